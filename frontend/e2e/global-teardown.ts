/** Stops the backend the e2e run started: SIGINT (as Ctrl-C), then SIGTERM if it has not exited in 60 s. */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { STATE_FILE } from './global-setup';

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(STATE_FILE)) return;
  const { pid, home } = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as { pid: number; home: string };
  if (alive(pid)) {
    process.kill(pid, 'SIGINT');
    const until = Date.now() + 60_000;
    while (alive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 500));
    if (alive(pid)) { console.log(`[e2e] aico up (pid ${pid}) still running after SIGINT; sending SIGTERM`); process.kill(pid, 'SIGTERM'); }
  }
  console.log(`[e2e] backend stopped`);
  if (process.env.AICO_E2E_KEEP_HOME !== '1') rmSync(home, { recursive: true, force: true });
  rmSync(STATE_FILE, { force: true });
}
