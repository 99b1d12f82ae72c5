/** The live transcript of a voice call: interim text replaced by the final text of the same turn. */

export type LiveLine = { role: 'user' | 'agent' | string; text: string; final: boolean };

export function applyTranscript(lines: LiveLine[], ev: { role: string; text: string; final?: boolean }): LiveLine[] {
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
