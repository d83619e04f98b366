import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';

// A throwaway PostgreSQL cluster per test file (research/real-parts-recipes.md §2): initdb in a
// temp dir, started with pg_ctl on a free 127.0.0.1 port, unix socket in the same temp dir,
// durability off (fsync, synchronous_commit, full_page_writes). initdb refuses to run as
// root, so as root (CI) every server command runs as the `postgres` user through runuser.
// `createDatabase()` gives each test its own empty database; `stop()` stops the server and
// removes the directory (also done on process exit if a test file forgets).

const run = promisify(execFile);

export interface Postgres {
  /** Connection URL of the cluster's `postgres` database (trust auth, user postgres). */
  readonly url: string;
  readonly port: number;
  /** Directory holding the data dir, the log and the unix socket. */
  readonly dir: string;
  /**
   * Creates an empty database and returns its URL. The cluster's collation is C.UTF-8 (code
   * point order, as SQLite compares text); `icuLocale` (e.g. "en-US") creates the database
   * with that ICU collation instead, as a production database often has.
   */
  createDatabase(opts?: { name?: string; icuLocale?: string }): Promise<string>;
  /** Stops the server (fast shutdown: open connections are cut), keeping its data (fault tests). */
  stopServer(): Promise<void>;
  /** Starts a server stopped with stopServer() again on the same port and data. */
  startServer(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** The bin directory of the newest installed PostgreSQL; a clear error when there is none. */
export function postgresBinDir(): string {
  const fromEnv = process.env.TUNN_PG_BIN;
  if (fromEnv) {
    if (!existsSync(join(fromEnv, 'initdb'))) throw new Error(`TUNN_PG_BIN=${fromEnv} has no initdb`);
    return fromEnv;
  }
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length > 0) return join(base, versions[0]!, 'bin');
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    // no pg_config on PATH
  }
  throw new Error(
    'PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin or from `pg_config --bindir`. ' +
      'Install it (Debian/Ubuntu: apt-get install -y postgresql; .ci/run does this) or set TUNN_PG_BIN to its bin directory.',
  );
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const out = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim();
    const gid = execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
    return { uid: Number(out), gid: Number(gid) };
  } catch {
    throw new Error('running as root, but there is no `postgres` user to run PostgreSQL as (initdb refuses root); install the postgresql package or run the tests as a normal user');
  }
}

let counter = 0;

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBinDir();
  const asRoot = userInfo().uid === 0;
  // Short path: the unix socket path (dir/.s.PGSQL.<port>) must fit in 107 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'tunn-pg-'));
  if (asRoot) {
    const pg = postgresUser();
    chownSync(dir, pg.uid, pg.gid);
  }
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const cmd = (tool: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args]);
  const exec = async (tool: string, args: string[]) => {
    const [file, argv] = cmd(tool, args);
    return run(file, argv, { encoding: 'utf8', timeout: 60_000 });
  };
  const readLog = () => {
    try {
      return readFileSync(log, 'utf8').slice(-3000);
    } catch {
      return '';
    }
  };

  let running = false;
  const cleanupSync = () => {
    if (running) {
      const [file, argv] = cmd('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      try {
        execFileSync(file, argv, { stdio: 'ignore', timeout: 10_000 });
      } catch {
        // already gone
      }
      running = false;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanupSync);

  try {
    await exec('initdb', ['-D', data, '--auth=trust', '-U', 'postgres', '--no-sync', '--encoding=UTF8', '--locale=C.UTF-8', '--no-instructions']);
  } catch (err) {
    cleanupSync();
    const e = err as Error & { stderr?: string };
    throw new Error(`initdb failed: ${e.stderr || e.message}`);
  }

  let port = 0;
  const serverOpts = () =>
    [`-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1', '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off', '-c max_connections=100'].join(' ');
  const pgStart = () => exec('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', '-o', serverOpts(), 'start']);
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await pgStart();
      running = true;
      break;
    } catch (err) {
      // Another process may have taken the free port between the check and the start.
      if (attempt < 2 && /could not (bind|create listen)|already in use/i.test(readLog())) continue;
      const e = err as Error & { stderr?: string };
      cleanupSync();
      throw new Error(`pg_ctl start failed: ${e.stderr || e.message}\n${readLog()}`);
    }
  }

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dir,
    async createDatabase(opts: { name?: string; icuLocale?: string } = {}) {
      const db = opts.name ?? `t${process.pid}_${++counter}`;
      if (!/^[a-z_][a-z0-9_]*$/.test(db)) throw new Error(`database name ${db}: use [a-z0-9_]`);
      if (opts.icuLocale !== undefined && !/^[A-Za-z0-9-]+$/.test(opts.icuLocale)) throw new Error(`ICU locale ${opts.icuLocale}: use letters, digits and -`);
      const icu = opts.icuLocale ? ` TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '${opts.icuLocale}'` : '';
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${db}${icu}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${db}`;
    },
    async stopServer() {
      if (!running) return;
      await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      running = false;
    },
    async startServer() {
      if (running) return;
      try {
        await pgStart();
      } catch (err) {
        const e = err as Error & { stderr?: string };
        throw new Error(`pg_ctl start (again, port ${port}) failed: ${e.stderr || e.message}\n${readLog()}`);
      }
      running = true;
    },
    async stop() {
      process.removeListener('exit', cleanupSync);
      if (running) {
        try {
          await exec('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
          running = false;
        } catch {
          // still running: cleanupSync stops it with -m immediate
        }
      }
      cleanupSync();
    },
  };
}
