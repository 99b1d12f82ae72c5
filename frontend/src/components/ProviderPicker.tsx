/** Choose a provider kind for one capability and fill its config from the catalog's JSON Schema. */
import Form from '@rjsf/core';
import validator from '@rjsf/validator-ajv8';
import type { ProviderCatalogItem, ProviderChoice } from '../api/types';
import type { RJSFSchema } from '@rjsf/utils';
import { formFriendly } from '../flows/schema';

export function ProviderPicker({ capability, catalog, value, onChange, inheritLabel }: {
  capability: string;
  catalog: ProviderCatalogItem[];
  value: ProviderChoice | null | undefined;
  onChange: (v: ProviderChoice | null) => void;
  inheritLabel: string;
}) {
  const options = catalog.filter((c) => c.capability === capability);
  const kind = value?.kind ?? '';
  const item = options.find((o) => o.kind === kind);
  return (
    <fieldset className="provider-picker" data-testid={`provider-${capability}`}>
      <legend>{capability.toUpperCase()}</legend>
      <select aria-label={`${capability} provider`} value={kind} onChange={(e) => onChange(e.target.value ? { kind: e.target.value, config: {} } : null)}>
        <option value="">{inheritLabel}</option>
        {options.map((o) => <option key={o.kind} value={o.kind}>{o.kind}</option>)}
        {kind && !item && <option value={kind}>{kind} (not in catalog)</option>}
      </select>
      {item?.required_secrets?.length ? <p className="small muted">Needs secrets: {item.required_secrets.join(', ')}</p> : null}
      {item?.config_schema && Object.keys((item.config_schema.properties as object) ?? {}).length > 0 && (
        <Form
          schema={formFriendly(item.config_schema) as RJSFSchema}
          formData={value?.config ?? {}}
          validator={validator}
          noValidate
          onChange={(e) => onChange({ ...value, kind, config: e.formData as Record<string, unknown> })}
        >
          <></>
        </Form>
      )}
    </fieldset>
  );
}
