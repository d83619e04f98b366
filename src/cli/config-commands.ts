import type { Command } from 'commander';
import { out } from './identity-commands.ts';
import { readUserConfig, setUserSetting, settableKeys, unsetUserSetting, userConfigPath } from './user-config.ts';

// `tunn config set|get|unset|list`: the user's default agent settings (src/cli/user-config.ts).

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description(`your default settings for \`tunn <port>\` and the API commands (${userConfigPath().replace(process.env.HOME ?? '\0', '~')})`);
  config
    .command('set')
    .description('set a default, e.g. `tunn config set relay https://tunn.example.com`')
    .argument('<key>', `one of: ${settableKeys().join(', ')}`)
    .argument('<value>', 'its value (lists comma-separated; file paths are stored absolute)')
    .option('--json', 'print JSON')
    .action((key: string, value: string, o: { json?: boolean }) => {
      const r = setUserSetting(key, value);
      out(o, { event: 'config', key: r.key, value: r.value, path: r.path }, () => `${r.key} = ${JSON.stringify(r.value)} (in ${r.path})\n`);
    });
  config
    .command('get')
    .description('print one default')
    .argument('<key>')
    .action((key: string) => {
      const v = readUserConfig()[key.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
      if (v !== undefined) process.stdout.write(`${Array.isArray(v) ? v.join(',') : String(v)}\n`);
      else process.exitCode = 1;
    });
  config
    .command('unset')
    .description('remove a default')
    .argument('<key>')
    .option('--json', 'print JSON')
    .action((key: string, o: { json?: boolean }) => {
      const r = unsetUserSetting(key);
      out(o, { event: 'config', key: r.key, removed: r.was, path: r.path }, () => (r.was ? `${r.key} removed\n` : `${r.key} was not set\n`));
    });
  config
    .command('list')
    .description('print every default and where the file is')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const cfg = readUserConfig();
      out(o, { event: 'config', path: userConfigPath(), settings: cfg }, () => `# ${userConfigPath()}\n${Object.entries(cfg).map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`).join('') || '(no defaults set)\n'}`);
    });
}
