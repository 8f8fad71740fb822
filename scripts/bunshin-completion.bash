# bash completion for bunshin (source it, or install it as
# /usr/share/bash-completion/completions/bunshin). Resources, verbs and
# options come from the CLI itself (`bunshin RESOURCE VERB --help`), so
# this file does not go stale when commands are added.

_bunshin_words() {
	# "  resource verb ARGS" lines of `bunshin --help`; "  command  ARGS" for one without a verb
	bunshin --help 2>/dev/null | awk '/^  [a-z]+ [a-z]+/ {print $1, $2} /^  [a-z]+  / {print $1}'
}

_bunshin_servers() {
	# server names, when bunshind answers
	bunshin --json server list 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p'
}

_bunshin() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local words=() w resource="" verb=""
	for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
		case $w in
		-*) ;;
		*) words+=("$w") ;;
		esac
	done
	resource=${words[0]:-}
	verb=${words[1]:-}
	local prev=${COMP_WORDS[COMP_CWORD-1]}
	if [[ $prev == --file || $prev == --user-data ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	if [[ $cur == -* ]]; then
		local opts="--json --endpoint --token --cacert --help"
		if [[ -n $verb ]]; then
			opts+=" $(bunshin "$resource" "$verb" --help 2>/dev/null |
				awk '/^  --/ {print $1}')"
		fi
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return
	fi
	if [[ -z $resource ]]; then
		COMPREPLY=($(compgen -W "$(_bunshin_words | awk '{print $1}' | sort -u)" -- "$cur"))
	elif [[ $resource == console ]]; then
		# `bunshin console NAME`: no verb, the server comes next
		[[ -z $verb ]] && COMPREPLY=($(compgen -W "$(_bunshin_servers)" -- "$cur"))
	elif [[ -z $verb ]]; then
		COMPREPLY=($(compgen -W "$(_bunshin_words | awk -v r="$resource" '$1 == r {print $2}')" -- "$cur"))
	elif [[ $resource == server && $verb == image && ${#words[@]} -ge 3 ]]; then
		# `server image NAME IMAGE`: the new image's name is the user's to choose
		COMPREPLY=()
	elif [[ $resource == server && $verb != create && $verb != list ]]; then
		COMPREPLY=($(compgen -W "$(_bunshin_servers)" -- "$cur"))
	elif [[ $resource == keypair && ($verb == show || $verb == delete) ]]; then
		# key pair names, when bunshind answers
		COMPREPLY=($(compgen -W "$(bunshin --json keypair list 2>/dev/null |
			sed -n 's/^ *"name": "\(.*\)",$/\1/p')" -- "$cur"))
	fi
}
complete -F _bunshin bunshin
