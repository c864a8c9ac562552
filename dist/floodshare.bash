# bash completion for floodshare(1): commands, peer ids and item names.
# Installed as /usr/share/bash-completion/completions/floodshare (bash-completion loads it the
# first time `floodshare` is completed); `source dist/floodshare.bash` to try it from the tree.
#
# Peer ids come from the run folder exactly as the CLI finds it (rundir.h): --run DIR on the
# line, else $FLOODSHARE_RUN when set and not empty, else ./run; a peer is named there by
# peer-N.sock, peer-N.ini or peerN.ini. Item names (after `peer N get|rm|search`) come from the
# peer itself, `floodshare peer N ls --json`, given one second: a peer that is down, or whose
# socket this user may not open, offers none and completion stays quiet.

_floodshare_rundir()
{
    local i
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        if [[ ${COMP_WORDS[i]} == --run ]]; then
            # eval-free tilde expansion of the one common case
            local d=${COMP_WORDS[i + 1]}
            [[ $d == "~"* ]] && d=$HOME${d:1}
            printf '%s\n' "$d"
            return
        fi
        [[ ${COMP_WORDS[i]} == --run=* ]] && { printf '%s\n' "${COMP_WORDS[i]#--run=}"; return; }
    done
    if [[ -n ${FLOODSHARE_RUN-} ]]; then
        printf '%s\n' "$FLOODSHARE_RUN"
    else
        printf '%s\n' run
    fi
}

# The peer ids of the run folder, one a line, sorted, each once.
_floodshare_ids()
{
    local dir=$1 f n
    [[ -d $dir ]] || return 0
    for f in "$dir"/peer-*.sock "$dir"/peer-*.ini "$dir"/peer*.ini; do
        [[ -e $f ]] || continue
        n=${f##*/peer}
        n=${n#-}
        n=${n%.sock}
        n=${n%.ini}
        [[ $n =~ ^[1-9][0-9]{0,4}$ ]] && ((n <= 65535)) && printf '%s\n' "$n"
    done | sort -un
}

# The item names peer $2 of run folder $1 shares, one a line, from its `ls --json`.
_floodshare_items()
{
    local json
    json=$(timeout 1 "${COMP_WORDS[0]}" --run "$1" peer "$2" ls --json 2>/dev/null) || return 0
    # Each item is {"name":"...","kind":...; names are JSON strings: undo the escapes a
    # file name may need (\" and \\; the rest are control characters, left out).
    grep -o '"name":"\([^"\\]\|\\["\\]\)*"' <<<"$json" |
        sed -e 's/^"name":"//' -e 's/"$//' -e 's/\\\(["\\]\)/\1/g'
}

_floodshare()
{
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    # The words after the global options: the command and its arguments.
    local -a w=()
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --run) ((i++)) ;;
            --run=*) ;;
            *) w+=("${COMP_WORDS[i]}") ;;
        esac
    done

    if [[ $prev == --run ]]; then
        COMPREPLY=($(compgen -d -- "$cur"))
        return
    fi

    local peer_cmds="get search ls config modify stats transfers link pause resume rm send watch
                     events browse"
    if ((${#w[@]} == 0)); then
        COMPREPLY=($(compgen -W "peer peers watch trace web serve keygen fingerprint --run
                               --help --version" -- "$cur"))
        return
    fi

    local dir
    dir=$(_floodshare_rundir)
    case ${w[0]} in
        peer)
            case ${#w[@]} in
                1) COMPREPLY=($(compgen -W "$(_floodshare_ids "$dir")" -- "$cur")) ;;
                2) COMPREPLY=($(compgen -W "$peer_cmds" -- "$cur")) ;;
                3)
                    case ${w[2]} in
                        get | rm | search | send)
                            local IFS=$'\n'
                            COMPREPLY=($(compgen -W "$(_floodshare_items "$dir" "${w[1]}")" \
                                -- "$cur"))
                            # a name with spaces is one word, quoted when inserted
                            compopt -o filenames 2>/dev/null
                            ;;
                        modify)
                            COMPREPLY=($(compgen -W "ttl neighbours share_dir log_level
                                                   upload_rate download_rate browse send_from
                                                   quota max_item" -- "$cur")) ;;
                        browse) COMPREPLY=($(compgen -W "$(_floodshare_ids "$dir")" -- "$cur")) ;;
                        link) COMPREPLY=($(compgen -W "down up" -- "$cur")) ;;
                        ls | config | stats | transfers | watch | events)
                            COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
                    esac
                    ;;
                *)
                    case ${w[2]} in
                        get)
                            if [[ $prev == from ]]; then
                                COMPREPLY=($(compgen -W "$(_floodshare_ids "$dir")" -- "$cur"))
                            else
                                COMPREPLY=($(compgen -W "from --json --quiet" -- "$cur"))
                            fi
                            ;;
                        browse) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
                        search | rm) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
                        send)
                            case ${#w[@]} in
                                4) COMPREPLY=($(compgen -W "to" -- "$cur")) ;;
                                5) COMPREPLY=($(compgen -W "$(_floodshare_ids "$dir")" -- "$cur")) ;;
                                *) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
                            esac
                            ;;
                        modify)
                            case ${w[3]} in
                                log_level) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")) ;;
                                browse) COMPREPLY=($(compgen -W "any neighbours none" -- "$cur")) ;;
                                send_from) COMPREPLY=($(compgen -W "none neighbours any" -- "$cur")) ;;
                            esac
                            ;;
                    esac
                    ;;
            esac
            ;;
        peers | watch) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
        trace)
            case $prev in
                --svg | --png) COMPREPLY=($(compgen -f -- "$cur")) ;;
                *) ((${#w[@]} > 1)) && COMPREPLY=($(compgen -W "--json --dot --svg --png" -- "$cur")) ;;
            esac
            ;;
        web)
            [[ $prev == --listen ]] || COMPREPLY=($(compgen -W "--listen --public" -- "$cur")) ;;
        serve)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--run" -- "$cur"))
            else
                COMPREPLY=($(compgen -f -X '!*.ini' -- "$cur") $(compgen -d -- "$cur"))
            fi
            ;;
        keygen | fingerprint) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _floodshare floodshare
