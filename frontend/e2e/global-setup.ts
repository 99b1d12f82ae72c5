/**
 * Starts the real backend for the e2e run: `<repo>/.venv/bin/aico up` with a temporary AICO_HOME and AICO_PORT=0
 * (Serve binds a free port; the start-up banner names it), waits for GET /healthz → 200, reads the dev token, and hands both to the tests through the environment.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeTwilio } from './fake-twilio';

const here = dirname(fileURLToPath(import.meta.url));
const frontend = resolve(here, '..');
const repo = resolve(frontend, '..');
export const STATE_FILE = join(here, '.tmp', 'backend.json');

/** Waits for the banner `aico up` prints once every step is done, then for GET /healthz → 200 at the URL it names. */
async function waitUp(pid: number, timeoutMs: number, log: string): Promise<string> {
  const until = Date.now() + timeoutMs;
  let last = 'no banner yet';
  while (Date.now() < until) {
    try { process.kill(pid, 0); } catch { throw new Error(`aico up exited before it was healthy; see ${log}:\n${tail(log)}`); }
    const banner = /AICO is up in [0-9.]+s: (http:\/\/\S+)/.exec(readFileSync(log, 'utf8'));
    if (banner) {
      try {
        const r = await fetch(`${banner[1]}/healthz`);
        if (r.status === 200) return banner[1];
        last = `HTTP ${r.status}`;
      } catch (e) { last = (e as Error).message; }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`aico up not healthy after ${timeoutMs / 1000}s (${last}); see ${log}:\n${tail(log)}`);
}

function tail(path: string): string {
  try { return readFileSync(path, 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
}

export default async function globalSetup(): Promise<void> {
  mkdirSync(join(here, '.tmp'), { recursive: true });
  mkdirSync(join(here, 'screenshots'), { recursive: true });
  if (!existsSync(join(frontend, 'dist', 'index.html')) || !existsSync(join(frontend, 'dist', 'widget.js'))) {
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
  const log = join(here, '.tmp', 'aico-up.log');
  const out = openSync(log, 'w');
  const started = Date.now();
  // Outbound phone calls go to a loopback fake of Twilio's REST API (the real twilio client talks to it); it lives
  // as long as this runner process.
  const twilio = await startFakeTwilio();
  twilio.server.unref();
  process.env.AICO_E2E_TWILIO_URL = twilio.url;
  const child = spawn(aico, ['up'], {
    cwd: repo,
    env: {
      // On a loaded 2-core machine Ray's dashboard agent can take longer than the raylet's default 30 s wait.
      RAY_agent_register_timeout_ms: '180000',
      ...process.env,
      AICO_HOME: home, AICO_PORT: '0', AICO_HOST: '127.0.0.1', // port 0: Serve binds a free one, the banner names it
      AICO_TELEPHONY_TWILIO_API_URL: twilio.url,
    },
    stdio: ['ignore', out, out],
    detached: true, // its own process group: Ctrl-C at the terminal does not reach it twice
  });
  writeFileSync(STATE_FILE, JSON.stringify({ pid: child.pid, home, log }));
  console.log(`[e2e] aico up (pid ${child.pid}), AICO_HOME=${home}, log ${log}`);
  const baseURL = await waitUp(child.pid!, Number(process.env.AICO_E2E_START_TIMEOUT_S ?? 300) * 1000, log);
  writeFileSync(STATE_FILE, JSON.stringify({ pid: child.pid, home, baseURL, log }));
  const token = readFileSync(join(home, 'dev-token'), 'utf8').trim();
  console.log(`[e2e] backend healthy on ${baseURL} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.env.AICO_E2E_BASE_URL = baseURL;
  process.env.AICO_E2E_TOKEN = token;
  child.unref();
}
