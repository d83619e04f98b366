import type { Command } from 'commander';

// Shell completion scripts generated from the command tree, so they stay in step with it.

interface Node {
  path: string[];
  subcommands: string[];
  options: string[];
}

function walk(cmd: Command, path: string[] = []): Node[] {
  const node: Node = {
    path,
    subcommands: cmd.commands.map((c) => c.name()),
    options: cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => Boolean(x))).concat('--help'),
  };
  return [node, ...cmd.commands.flatMap((c) => walk(c, [...path, c.name()]))];
}

export function completionScript(program: Command, shell: string): string {
  const nodes = walk(program);
  if (shell === 'bash') {
    const cases = nodes
      .map((n) => `    "${n.path.join(' ')}") words="${[...n.subcommands, ...n.options].join(' ')}";;`)
      .join('\n');
    return `# tunn bash completion: source <(tunn completion bash)
_tunn() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w i
  for ((i=1; i<COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case " $(_tunn_subs "$path") " in *" $w "*) path="\${path:+$path }$w";; esac
  done
  local words
  case "$path" in
${cases}
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
_tunn_subs() {
  case "$1" in
${nodes.map((n) => `    "${n.path.join(' ')}") echo "${n.subcommands.join(' ')}";;`).join('\n')}
  esac
}
complete -F _tunn tunn
`;
  }
  if (shell === 'zsh') {
    return `#compdef tunn
# tunn zsh completion: source <(tunn completion zsh)
autoload -U +X bashcompinit && bashcompinit
${completionScript(program, 'bash')}`;
  }
  if (shell === 'fish') {
    const lines = ['# tunn fish completion: tunn completion fish | source', 'complete -c tunn -f'];
    for (const n of nodes) {
      const cond = n.path.length === 0 ? '__fish_use_subcommand' : `__fish_seen_subcommand_from ${n.path[n.path.length - 1]}`;
      for (const s of n.subcommands) lines.push(`complete -c tunn -n '${cond}' -a '${s}'`);
      for (const o of n.options) {
        if (o.startsWith('--')) lines.push(`complete -c tunn -n '${cond}' -l '${o.slice(2)}'`);
        else lines.push(`complete -c tunn -n '${cond}' -s '${o.slice(1)}'`);
      }
    }
    return lines.join('\n') + '\n';
  }
  throw new Error(`no completion for shell "${shell}": use bash, zsh or fish`);
}
