/** The live transcript of a voice call: interim text replaced by the final text of the same turn. */
import type { Transcript } from '../api/voice-messages';

export type LiveLine = { role: Transcript['role'] | 'system' | string; text: string; final: boolean };

/** A `transcript` message, or a stored transcript line (whose agent role is `assistant`, and which is final). */
export type TranscriptLine = Pick<Transcript, 'text'> & { role: Transcript['role'] | string; final?: boolean };

export function applyTranscript(lines: LiveLine[], ev: TranscriptLine): LiveLine[] {
  const role = ev.role === 'assistant' ? 'agent' : ev.role;
  const final = ev.final !== false;
  // An interim line of the same role, still open, is the one this event updates.
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i];
    if (l.role === role && !l.final) {
      const next = [...lines];
      next[i] = { role, text: ev.text, final };
      return next;
    }
    if (l.role === role) break;
  }
  if (!ev.text && final) return lines;
  return [...lines, { role, text: ev.text, final }];
}

/** A streamed piece of the agent's reply (`agent_text` with `final: false`): appended to the open agent line. */
export function appendAgentDelta(lines: LiveLine[], delta: string): LiveLine[] {
  const last = lines[lines.length - 1];
  if (last && last.role === 'agent' && !last.final) {
    return [...lines.slice(0, -1), { ...last, text: last.text + delta }];
  }
  for (let i = lines.length - 1; i >= 0; i--) {
    // An open agent line exists under a user line spoken meanwhile: keep appending to it.
    if (lines[i].role === 'agent' && !lines[i].final) {
      const next = [...lines];
      next[i] = { ...lines[i], text: lines[i].text + delta };
      return next;
    }
    if (lines[i].role === 'agent') break;
  }
  return [...lines, { role: 'agent', text: delta, final: false }];
}
