# bash completion for heartwirectl(8): commands, options, and node names from the control
# sockets in /run/heartwire.
_heartwirectl() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi
    local commands="status switchover fault clear inflight metrics log-level state"
    local options="-h --help -s --socket -n --node -t --timeout -g --group -V --version"

    case $prev in
        -s|--socket)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        -n|--node)
            local socks=(/run/heartwire/*.sock) names=()
            local s
            for s in "${socks[@]}"; do
                [ -S "$s" ] && names+=("$(basename "$s" .sock)")
            done
            COMPREPLY=($(compgen -W "${names[*]}" -- "$cur"))
            return ;;
        -t|--timeout|-g|--group|inflight|--timeout-ms|--store)
            return ;;
        --path)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        fault)
            COMPREPLY=($(compgen -W "app disk sync script interface process application" -- "$cur"))
            return ;;
        log-level)
            COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
            return ;;
    esac

    # The command already given: its own options (state: its commands, then theirs).
    local i cmd= sub=
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -s|--socket|-n|--node|-t|--timeout|-g|--group|--store|--path|--timeout-ms) ((i++)) ;;
            -*) ;;
            *) if [ -z "$cmd" ]; then cmd=${words[i]}; [ "$cmd" = state ] || break
               elif [ -z "$sub" ]; then sub=${words[i]}; break; fi ;;
        esac
    done
    if [ "$cmd" = state ]; then
        local common="--store --path --node --help"
        case $sub in
            '') COMPREPLY=($(compgen -W "get put erase dump stats" -- "$cur")) ;;
            get) COMPREPLY=($(compgen -W "$common --hex" -- "$cur")) ;;
            put) COMPREPLY=($(compgen -W "$common --hex --timeout-ms" -- "$cur")) ;;
            erase) COMPREPLY=($(compgen -W "$common --timeout-ms" -- "$cur")) ;;
            dump) COMPREPLY=($(compgen -W "$common --json --hex" -- "$cur")) ;;
            stats) COMPREPLY=($(compgen -W "$common --json" -- "$cur")) ;;
        esac
        return
    fi
    if [ -n "$cmd" ]; then
        [ "$cmd" = status ] && COMPREPLY=($(compgen -W "--json --help" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
}
complete -F _heartwirectl heartwirectl
