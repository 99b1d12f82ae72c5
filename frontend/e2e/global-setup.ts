/**
 * Starts the real backend for the e2e run: `<repo>/.venv/bin/aico up` with a temporary AICO_HOME and a free
 * AICO_PORT, waits for GET /healthz → 200, reads the dev token, and hands both to the tests through the environment.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const frontend = resolve(here, '..');
const repo = resolve(frontend, '..');
export const STATE_FILE = join(here, '.tmp', 'backend.json');

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

async function waitHealthy(url: string, pid: number, timeoutMs: number, log: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    try { process.kill(pid, 0); } catch { throw new Error(`aico up exited before it was healthy; see ${log}:\n${tail(log)}`); }
    try {
      const r = await fetch(url);
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) { last = (e as Error).message; }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`GET ${url} not 200 after ${timeoutMs / 1000}s (${last}); see ${log}:\n${tail(log)}`);
}

function tail(path: string): string {
  try { return readFileSync(path, 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
}

export default async function globalSetup(): Promise<void> {
  mkdirSync(join(here, '.tmp'), { recursive: true });
  mkdirSync(join(here, 'screenshots'), { recursive: true });
  if (!existsSync(join(frontend, 'dist', 'index.html'))) {
    console.log('[e2e] building the dashboard (frontend/dist is missing)…');
    execFileSync('npm', ['run', 'build'], { cwd: frontend, stdio: 'inherit' });
  }
  if (process.env.AICO_E2E_BASE_URL && process.env.AICO_E2E_TOKEN) {
    console.log(`[e2e] using the backend already running at ${process.env.AICO_E2E_BASE_URL}`);
    return;
  }
  const aico = process.env.AICO_BIN ?? join(repo, '.venv', 'bin', 'aico');
  if (!existsSync(aico)) throw new Error(`${aico} not found: install the backend first (pip install -e .)`);
  const home = mkdtempSync(join(tmpdir(), 'aico-e2e-'));
  const port = await freePort();
  const log = join(here, '.tmp', 'aico-up.log');
  const out = openSync(log, 'w');
  const started = Date.now();
  const child = spawn(aico, ['up'], {
    cwd: repo,
    env: {
      // On a loaded 2-core machine Ray's dashboard agent can take longer than the raylet's default 30 s wait.
      RAY_agent_register_timeout_ms: '180000',
      ...process.env,
      AICO_HOME: home, AICO_PORT: String(port), AICO_HOST: '127.0.0.1',
    },
    stdio: ['ignore', out, out],
    detached: true, // its own process group: Ctrl-C at the terminal does not reach it twice
  });
  const baseURL = `http://127.0.0.1:${port}`;
  writeFileSync(STATE_FILE, JSON.stringify({ pid: child.pid, home, port, baseURL, log }));
  console.log(`[e2e] aico up (pid ${child.pid}) on ${baseURL}, AICO_HOME=${home}, log ${log}`);
  await waitHealthy(`${baseURL}/healthz`, child.pid!, Number(process.env.AICO_E2E_START_TIMEOUT_S ?? 300) * 1000, log);
  const token = readFileSync(join(home, 'dev-token'), 'utf8').trim();
  console.log(`[e2e] backend healthy after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.env.AICO_E2E_BASE_URL = baseURL;
  process.env.AICO_E2E_TOKEN = token;
  child.unref();
}
