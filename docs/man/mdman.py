#!/usr/bin/env python3
"""Markdown -> man(7) roff, for heartwire's own pages (docs/man/*.md, docs/configuration.md).

Handles what those pages use: headings (# title line, ## sections, ### subsections),
paragraphs, `-` lists, fenced code blocks, pipe tables (rendered as tagged paragraphs, one
per row: the first cell the tag, the others below it) and inline `code`, **bold**,
*italic* and [links](url) (the link text only). Anything else is passed through as text.

usage: mdman.py NAME SECTION INPUT.md OUTPUT [--reference]
  --reference: INPUT is docs/configuration.md; NAME, SYNOPSIS and SEE ALSO are added
"""
import re
import sys


def esc(s):
    s = s.replace("\\", "\\e")
    return s


def inline(s):
    s = s.replace("\\|", "|")  # a pipe escaped for the Markdown table
    s = esc(s)
    s = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", s)
    s = re.sub(r"`([^`]+)`", lambda m: "\\fB" + m.group(1).replace("-", "\\-") + "\\fR", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", s)
    s = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\\fI\1\\fR", s)
    return s


def line_out(s):
    # A line starting with . or ' is a roff request: guard it.
    return "\\&" + s if s[:1] in (".", "'") else s


def cells(row):
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    out, cur, code = [], "", False
    for ch in row:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def convert(name, section, text, date):
    lines = text.splitlines()
    out = ['.TH "%s" "%s" "%s" "heartwire" "heartwire"' % (name.upper(), section, date)]
    i = 0
    para = []
    section = [""]

    def flush():
        if para:
            out.append(".PP")
            for p in para:
                t = inline(p)
                if section[0] == "NAME":  # "name - what": man's own dash
                    t = t.replace(" - ", " \\- ", 1)
                out.append(line_out(t))
            para.clear()

    while i < len(lines):
        ln = lines[i]
        s = ln.strip()
        if s.startswith("```"):
            flush()
            out.append(".PP\n.RS 4\n.nf")
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                out.append(line_out(esc(lines[i])))
                i += 1
            out.append(".fi\n.RE")
        elif s.startswith("# "):
            flush()  # the page title: the .TH line says it
        elif s.startswith("## ") or s.startswith("### "):
            flush()
            title = s.lstrip("#").strip()
            section[0] = title
            out.append((".SH " if s.startswith("## ") else ".SS ") + '"' + inline(title).replace('"', "") + '"')
        elif s.startswith("|"):
            flush()
            header = cells(s)
            i += 1
            if i < len(lines) and re.match(r"^\s*\|?\s*:?-", lines[i]):
                i += 1
            while i < len(lines) and lines[i].strip().startswith("|"):
                c = cells(lines[i])
                out.append(".TP")
                out.append(line_out(inline(c[0])))
                rest = [("%s: %s" % (h, v) if h and len(c) > 2 and j < len(c) - 1 else v)
                        for j, (h, v) in enumerate(zip(header[1:], c[1:]), start=1)]
                detail = [r for r in rest[:-1] if r]
                if detail:
                    out.append(line_out(inline("; ".join(detail))))
                    out.append(".br")
                if rest:
                    out.append(line_out(inline(rest[-1])))
                i += 1
            continue
        elif re.match(r"^\s*([-*]|\d+\.)\s", ln):
            flush()
            item = [re.sub(r"^\s*([-*]|\d+\.)\s+", "", ln)]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() and not re.match(r"^\s*([-*]|\d+\.)\s", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out.append(".IP \\(bu 2")
            out.extend(line_out(inline(p)) for p in item)
            continue
        elif not s:
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    name, section, src, dst = sys.argv[1:5]
    text = open(src, encoding="utf-8").read()
    if len(sys.argv) > 5 and sys.argv[5] == "--reference":
        # docs/configuration.md: the man page's NAME and SYNOPSIS come first.
        text = ("## NAME\n\n%s - heartwired configuration file\n\n## SYNOPSIS\n\n"
                "/etc/heartwire/*.toml\n\n## DESCRIPTION\n\n" % name) + text + \
               "\n## SEE ALSO\n\nheartwired(8), heartwirectl(8)\n"
    open(dst, "w", encoding="utf-8").write(convert(name, section, text, "2026-12-02"))


if __name__ == "__main__":
    main()
