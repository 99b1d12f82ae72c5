/** Choose a provider kind for one capability and fill its settings from the catalog's JSON Schema. A config is flat: `{kind, ...fields}`. */
import Form from '@rjsf/core';
import validator from '@rjsf/validator-ajv8';
import type { RJSFSchema, UiSchema } from '@rjsf/utils';
import type { ProviderCatalogItem } from '../api/types';
import { formFriendly } from '../flows/schema';
import type { ProviderConfig } from '../providers/resolve';

export function ProviderPicker({ capability, catalog, value, onChange, inheritLabel, inherited }: {
  capability: string;
  catalog: ProviderCatalogItem[];
  value: ProviderConfig | null | undefined;
  onChange: (v: ProviderConfig | null) => void;
  inheritLabel: string;
  /** What applies when this layer sets nothing, e.g. "faster-whisper (server default)". */
  inherited?: string;
}) {
  const options = catalog.filter((c) => c.capability === capability);
  const kind = value?.kind ?? '';
  const item = options.find((o) => o.kind === kind);
  const { kind: _k, ...fields } = value ?? {};
  const schema = item?.config_schema ? configFormSchema(item.config_schema) : null;
  const uiSchema: UiSchema = { 'ui:submitButtonOptions': { norender: true } };
  return (
    <fieldset className="provider-picker" data-testid={`provider-${capability}`}>
      <legend>{capability.toUpperCase()}</legend>
      <select aria-label={`${capability} provider`} value={kind} onChange={(e) => onChange(e.target.value ? { kind: e.target.value } : null)}>
        <option value="">{inheritLabel}{inherited ? `: ${inherited}` : ''}</option>
        {options.map((o) => <option key={o.kind} value={o.kind}>{o.kind}{typeof o.description === 'string' && o.description ? ` — ${o.description}` : ''}</option>)}
        {kind && !item && <option value={kind}>{kind} (not in catalog)</option>}
      </select>
      {kind && item?.required_secrets?.length ? <p className="small muted">Needs secrets: {item.required_secrets.join(', ')}</p> : null}
      {kind && schema && Object.keys(schema.properties as object).length > 0 && (
        <details>
          <summary className="small">Settings of {kind}</summary>
          <Form
            schema={schema as RJSFSchema}
            uiSchema={uiSchema}
            formData={fields}
            validator={validator}
            noValidate
            onChange={(e) => onChange({ kind, ...(e.formData as Record<string, unknown>) })}
          />
        </details>
      )}
    </fieldset>
  );
}

function configFormSchema(s: Record<string, unknown>): Record<string, unknown> {
  const f = formFriendly(s) as Record<string, unknown>;
  const properties = { ...((f.properties ?? {}) as Record<string, unknown>) };
  delete properties.kind;
  const required = ((f.required ?? []) as string[]).filter((r) => r !== 'kind');
  return { ...f, properties, required, title: undefined };
}
