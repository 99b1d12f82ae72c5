/** A flow's choice for one capability: one of the organization's provider profiles, and the harmless
 * tuning the profile allows (model among its allowed ones, temperature). URLs and secrets are the
 * profile's: an organization admin sets them on the Providers page. */
import type { FlowChoice, ProfileChoice } from '../providers/resolve';
import { profileFor } from '../providers/resolve';

export function ProviderProfilePicker({ capability, profiles, value, onChange }: {
  capability: string;
  profiles: ProfileChoice[];
  value: FlowChoice | null | undefined;
  onChange: (v: FlowChoice | null) => void;
}) {
  const mine = profiles.filter((p) => p.capability === capability);
  const fallback = mine.find((p) => p.default);
  const chosen = profileFor(capability, value, profiles);
  const models = chosen ? [chosen.model, ...chosen.allowed_models].filter((m): m is string => !!m) : [];
  const set = (patch: Partial<FlowChoice>) => {
    const next: FlowChoice = { ...(value ?? {}), ...patch };
    for (const k of Object.keys(next) as (keyof FlowChoice)[]) if (next[k] === undefined || next[k] === '') delete next[k];
    onChange(Object.keys(next).length ? next : null);
  };
  return (
    <fieldset className="provider-picker" data-testid={`provider-${capability}`}>
      <legend>{capability.toUpperCase()}</legend>
      <select aria-label={`${capability} profile`} value={value?.profile ?? ''} onChange={(e) => set({ profile: e.target.value || undefined, model: undefined })}>
        <option value="">Organization default{fallback ? `: ${fallback.name} (${fallback.kind})` : ': server default'}</option>
        {mine.map((p) => <option key={p.name} value={p.name}>{p.name} ({p.kind})</option>)}
        {value?.profile && !mine.some((p) => p.name === value.profile) && <option value={value.profile}>{value.profile} (no such profile)</option>}
      </select>
      {chosen?.required_secrets.length ? <p className="small muted">Needs secrets: {chosen.required_secrets.join(', ')}</p> : null}
      {models.length > 1 && (
        <label className="small">Model
          <select aria-label={`${capability} model`} value={value?.model ?? ''} onChange={(e) => set({ model: e.target.value || undefined })}>
            <option value="">{models[0]} (profile's)</option>
            {models.slice(1).map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
      )}
      {capability === 'llm' && (
        <label className="small">Temperature
          <input aria-label={`${capability} temperature`} type="number" min={0} max={2} step={0.1} value={value?.temperature ?? ''}
            onChange={(e) => set({ temperature: e.target.value === '' ? undefined : Number(e.target.value) })} />
        </label>
      )}
    </fieldset>
  );
}
