import { describe, expect, it } from 'vitest';
import { parseSettings } from './phone';

describe('parseSettings', () => {
  it('reads key=value lines, trimming blanks and keeping = in values', () => {
    expect(parseSettings('account_sid = AC123\n\n auth_token_secret=TWILIO_AUTH_TOKEN \npublic_key=abc==')).toEqual({
      account_sid: 'AC123', auth_token_secret: 'TWILIO_AUTH_TOKEN', public_key: 'abc==',
    });
  });

  it('refuses a line that is not key=value, naming it', () => {
    expect(() => parseSettings('account_sid AC123')).toThrow('"account_sid AC123" is not key=value');
    expect(() => parseSettings('=value')).toThrow('is not key=value');
  });
});
