// Owns the throwaway databases for tests: PostgreSQL, MariaDB and Redis from the Debian packages,
// each on a free 127.0.0.1 port with its data in a private directory and a superuser/password chosen
// here. PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import { freePort, spawnService, tailLog, waitUntilReady } from './process.ts';

const run = promisify(execFile);

/** Connection info for one database server; plain data so vitest can provide() it. */
export interface DatabaseInfo {
  host: string;
  port: number;
  /** Superuser (PostgreSQL, MariaDB) or `default` (Redis, which authenticates with the password). */
  user: string;
  password: string;
  /** A database that exists (PostgreSQL `postgres`, MariaDB `enclave`, Redis `0`). */
  database: string;
  logFile: string;
}

export interface RunningDatabase extends DatabaseInfo {
  stop: () => Promise<void>;
}

function password(): string {
  return randomBytes(12).toString('hex');
}

function findBinary(name: string, dirs: string[]): string {
  for (const dir of dirs) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  throw new Error(`${name} not found (looked in ${dirs.join(', ')}): run \`npm run setup\` to install the Debian packages`);
}

/** Debian keeps PostgreSQL's server binaries in /usr/lib/postgresql/<major>/bin; take the newest. */
function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  const major = majors[0];
  if (major === undefined) throw new Error('PostgreSQL server not installed (no /usr/lib/postgresql/<version>): run `npm run setup`');
  return join(root, major, 'bin');
}

async function runOrExplain(what: string, cmd: string, args: string[], logFile: string): Promise<void> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    await writeFile(logFile, stdout + stderr, { flag: 'a' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${what} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
  }
}

export async function startPostgres(dir: string): Promise<RunningDatabase> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const osUser = asRoot ? 'postgres' : userInfo().username;
  const pgDir = join(dir, 'postgres');
  const data = join(pgDir, 'data');
  const logFile = join(pgDir, 'postgres.log');
  await mkdir(pgDir, { recursive: true, mode: 0o700 });
  // The run dir is root's; the postgres user must be able to reach its own subdirectory.
  await chmod(dir, 0o755);
  const pw = password();
  const pwFile = join(pgDir, 'pwfile');
  await writeFile(pwFile, pw + '\n', { mode: 0o600 });
  await writeFile(logFile, '');
  if (asRoot) {
    const { stdout } = await run('id', ['-u', osUser]).catch(() => {
      throw new Error('OS user `postgres` missing (it comes with the postgresql package): run `npm run setup`');
    });
    const { stdout: gid } = await run('id', ['-g', osUser]);
    const uid = Number(stdout.trim());
    for (const path of [pgDir, pwFile, logFile]) await chown(path, uid, Number(gid.trim()));
  }
  const initdbArgs = ['-D', data, '-U', 'enclave', `--pwfile=${pwFile}`, '--auth=scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale=C'];
  const initdb = asRoot
    ? { cmd: 'setpriv', args: ['--reuid', osUser, '--regid', osUser, '--init-groups', '--', join(bin, 'initdb'), ...initdbArgs] }
    : { cmd: join(bin, 'initdb'), args: initdbArgs };
  await runOrExplain('initdb', initdb.cmd, initdb.args, join(pgDir, 'initdb.log'));

  const port = await freePort();
  const service = spawnService({
    name: 'postgres',
    command: join(bin, 'postgres'),
    runAsUser: asRoot ? osUser : undefined,
    logFile,
    args: ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${pgDir}`,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
  });
  const info = { host: '127.0.0.1', port, user: 'enclave', password: pw, database: 'postgres', logFile };
  await waitUntilReady(service, async () => {
    const client = new pg.Client(info);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end().catch(() => {});
    }
  });
  return { ...info, stop: () => service.stop() };
}

export async function startMariadb(dir: string): Promise<RunningDatabase> {
  const installDb = findBinary('mariadb-install-db', ['/usr/bin', '/usr/local/bin']);
  const mariadbd = findBinary('mariadbd', ['/usr/sbin', '/usr/bin', '/usr/local/bin']);
  const myDir = join(dir, 'mariadb');
  const data = join(myDir, 'data');
  const socket = join(myDir, 'mariadb.sock');
  const logFile = join(myDir, 'mariadb.log');
  await mkdir(myDir, { recursive: true, mode: 0o700 });
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? 'root' : userInfo().username;
  await runOrExplain(
    'mariadb-install-db',
    installDb,
    ['--no-defaults', `--datadir=${data}`, `--user=${user}`, '--auth-root-authentication-method=normal', '--skip-test-db'],
    join(myDir, 'install-db.log'),
  );
  const port = await freePort();
  const service = spawnService({
    name: 'mariadb',
    command: mariadbd,
    logFile,
    args: ['--no-defaults', `--datadir=${data}`, `--socket=${socket}`, `--port=${port}`, '--bind-address=127.0.0.1',
      `--user=${user}`, `--pid-file=${join(myDir, 'mariadb.pid')}`, `--log-error=${logFile}`, '--skip-name-resolve',
      '--innodb-buffer-pool-size=64M', '--innodb-flush-log-at-trx-commit=0', '--skip-log-bin', '--max-connections=200'],
  });
  const pw = password();
  // Fresh install: root@localhost over the socket has no password. Create our TCP superuser there.
  await waitUntilReady(service, async () => {
    const conn = await mysql.createConnection({ socketPath: socket, user: 'root' });
    try {
      await conn.query(`CREATE USER IF NOT EXISTS 'enclave'@'%' IDENTIFIED BY '${pw}'`);
      await conn.query(`GRANT ALL PRIVILEGES ON *.* TO 'enclave'@'%' WITH GRANT OPTION`);
      await conn.query('CREATE DATABASE IF NOT EXISTS enclave');
      return true;
    } finally {
      await conn.end().catch(() => {});
    }
  });
  return { host: '127.0.0.1', port, user: 'enclave', password: pw, database: 'enclave', logFile, stop: () => service.stop() };
}

export async function startRedis(dir: string): Promise<RunningDatabase> {
  const redisServer = findBinary('redis-server', ['/usr/bin', '/usr/local/bin']);
  const redisDir = join(dir, 'redis');
  await mkdir(redisDir, { recursive: true, mode: 0o700 });
  const logFile = join(redisDir, 'redis.log');
  const port = await freePort();
  const pw = password();
  const service = spawnService({
    name: 'redis',
    command: redisServer,
    logFile,
    // Config on the command line, never from /etc/redis: private, memory-only, password-protected.
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir,
      '--requirepass', pw, '--daemonize', 'no', '--logfile', ''],
  });
  await waitUntilReady(service, async () => {
    const client = new Redis({ host: '127.0.0.1', port, password: pw, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {}); // connection refused while starting: the probe just retries
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } finally {
      client.disconnect();
    }
  });
  return { host: '127.0.0.1', port, user: 'default', password: pw, database: '0', logFile, stop: () => service.stop() };
}

export { tailLog };
