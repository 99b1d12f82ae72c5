/** Test console: chat with a published flow, or talk to it by voice in the browser. */
import { useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router-dom';
import { missingSecretsOf, useFlow } from '../api/flows';
import { ErrorNote } from '../components/ErrorNote';
import { CallPanel } from '../console/CallPanel';
import { ChatPanel } from '../console/ChatPanel';
import { VoicePanel } from '../console/VoicePanel';

export function ConsolePage() {
  const { id = '' } = useParams();
  const flow = useFlow(id);
  const missing = useQuery({ queryKey: ['missing-secrets', id], queryFn: () => missingSecretsOf(id), retry: false });
  return (
    <div>
      <div className="row">
        <Link to={`/flows/${id}`}>← Builder</Link>
        <h1>Test {flow.data?.name ?? 'flow'}</h1>
        {flow.data && <span className="muted">{flow.data.latest_version ? `published v${flow.data.latest_version}` : 'not published yet: publish it in the builder first'}</span>}
      </div>
      <ErrorNote error={flow.error} context="The flow could not be loaded" />
      {missing.data && missing.data.missing.length > 0 && (
        <div className="error" role="alert">This flow cannot start until these secrets exist: {missing.data.missing.join(', ')}. <Link to="/secrets">Add them</Link>.</div>
      )}
      <div className="console">
        <ChatPanel flowId={id} />
        <VoicePanel flowId={id} />
      </div>
      <CallPanel flowId={id} />
    </div>
  );
}
