/** Side panel for one node: a form generated from the node type's JSON Schema. */
import Form from '@rjsf/core';
import type { RJSFSchema, UiSchema } from '@rjsf/utils';
import validator from '@rjsf/validator-ajv8';
import { useEffect, useState } from 'react';
import type { FlowNode } from '../api/types';
import type { NodeTypeSpec } from '../flows/schema';

const LONG_TEXT = ['text', 'instructions', 'prompt', 'body', 'description'];

export function NodePanel({ node, spec, errors, onChange, onRename, onDelete }: {
  node: FlowNode;
  spec: NodeTypeSpec | undefined;
  errors: string[];
  onChange: (fields: Record<string, unknown>) => void;
  onRename: (newId: string) => boolean;
  onDelete: () => void;
}) {
  const { id, type, position: _p, ...fields } = node;
  const [idDraft, setIdDraft] = useState(id);
  const [idError, setIdError] = useState('');
  useEffect(() => { setIdDraft(id); setIdError(''); }, [id]);
  const props = (spec?.formSchema.properties ?? {}) as Record<string, { type?: string }>;
  const uiSchema: UiSchema = { 'ui:submitButtonOptions': { norender: true } };
  for (const k of Object.keys(props)) if (LONG_TEXT.includes(k) && props[k]?.type === 'string') uiSchema[k] = { 'ui:widget': 'textarea' };

  return (
    <div className="panel" data-testid="node-panel">
      <h3>{spec?.title ?? type} node</h3>
      {spec?.description && <p className="small muted">{spec.description}</p>}
      <label>
        Node id
        <input
          aria-label="Node id"
          value={idDraft}
          onChange={(e) => setIdDraft(e.target.value)}
          onBlur={() => { if (idDraft !== id) { if (!onRename(idDraft)) setIdError('That id is empty or already used.'); } }}
        />
      </label>
      {idError && <div className="error small">{idError}</div>}
      {errors.map((e, i) => <div key={i} className="error small" role="alert">{e}</div>)}
      {spec ? (
        <Form
          key={id}
          schema={spec.formSchema as RJSFSchema}
          uiSchema={uiSchema}
          formData={fields}
          validator={validator}
          noValidate
          onChange={(e) => onChange((e.formData ?? {}) as Record<string, unknown>)}
        />
      ) : (
        <p className="error">The server's schema has no node type “{type}”.</p>
      )}
      <button className="danger" onClick={onDelete}>Delete node</button>
    </div>
  );
}
