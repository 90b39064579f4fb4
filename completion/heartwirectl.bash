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
    local commands="status switchover fault clear inflight metrics log-level"
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
        -t|--timeout|-g|--group|inflight)
            return ;;
        fault)
            COMPREPLY=($(compgen -W "app disk sync script interface process application" -- "$cur"))
            return ;;
        log-level)
            COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
            return ;;
    esac

    # The command already given: its own options.
    local i cmd=
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -s|--socket|-n|--node|-t|--timeout|-g|--group) ((i++)) ;;
            -*) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done
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
