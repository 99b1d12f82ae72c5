/** An API error shown in words a user understands. */
import { describeError } from '../api/errors';

export function ErrorNote({ error, context }: { error: unknown; context?: string }) {
  if (!error) return null;
  return <div className="error" role="alert">{describeError(error, context)}</div>;
}
