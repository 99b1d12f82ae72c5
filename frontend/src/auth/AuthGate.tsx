/** Sign-in: the dev token in embedded mode, OIDC through Logto when the server says so. */
import { LogtoProvider, useHandleSignInCallback, useLogto } from '@logto/react';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState, type ReactNode } from 'react';
import { configureAuth, get } from '../api/client';
import { describeError } from '../api/errors';
import type { AuthConfig } from '../api/types';
import { clearToken, storedToken, takeTokenFromFragment } from './token';

export function AuthGate({ children }: { children: ReactNode }) {
  const cfg = useQuery({ queryKey: ['auth-config'], queryFn: () => get<AuthConfig>('/v1/auth/config'), retry: 1, staleTime: Infinity });
  if (cfg.isPending) return <div className="center muted">Connecting to AICO…</div>;
  // No auth config endpoint (older server): assume embedded dev mode.
  const mode = cfg.data?.mode ?? 'dev';
  if (mode === 'oidc' && cfg.data) return <OidcGate config={cfg.data}>{children}</OidcGate>;
  return <DevGate configError={cfg.error ? describeError(cfg.error) : null}>{children}</DevGate>;
}

function DevGate({ children, configError }: { children: ReactNode; configError: string | null }) {
  const [token, setToken] = useState<string | null>(() => takeTokenFromFragment() ?? storedToken());
  const [expired, setExpired] = useState(false);
  configureAuth(() => token, () => { clearToken(); setExpired(true); setToken(null); });
  useEffect(() => {
    const onHash = () => { const t = takeTokenFromFragment(); if (t) { setToken(t); setExpired(false); } };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  if (!token) return <SignInHelp expired={expired} configError={configError} onToken={(t) => { window.sessionStorage.setItem('aico.token', t); setToken(t); setExpired(false); }} />;
  return <>{children}</>;
}

function SignInHelp({ expired, configError, onToken }: { expired: boolean; configError: string | null; onToken: (t: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <div className="signin card">
      <h1>Sign in to AICO</h1>
      {expired && <p className="error">Your sign-in link was not accepted or has expired.</p>}
      <p>Open the sign-in link that <code>aico up</code> printed (it looks like <code>http://127.0.0.1:8000/#token=…</code>).</p>
      <p className="muted">Or paste the token from <code>$AICO_HOME/dev-token</code>:</p>
      <form onSubmit={(e) => { e.preventDefault(); if (value.trim()) onToken(value.trim()); }}>
        <input aria-label="Dev token" type="password" value={value} onChange={(e) => setValue(e.target.value)} placeholder="dev token" />
        <button type="submit">Sign in</button>
      </form>
      {configError && <p className="muted small">{configError}</p>}
    </div>
  );
}

function OidcGate({ config, children }: { config: AuthConfig; children: ReactNode }) {
  if (!config.issuer || !config.client_id) {
    return <div className="signin card"><h1>Sign-in is not configured</h1><p>The server uses OIDC but did not say which issuer and client to use (issuer and client_id are missing from /v1/auth/config).</p></div>;
  }
  // Logto's endpoint is its base URL; the issuer is `<endpoint>/oidc`.
  const endpoint = config.issuer.replace(/\/oidc\/?$/, '');
  return (
    <LogtoProvider config={{ endpoint, appId: config.client_id, resources: config.audience ? [config.audience] : [] }}>
      <OidcSession audience={config.audience}>{children}</OidcSession>
    </LogtoProvider>
  );
}

function OidcSession({ audience, children }: { audience?: string; children: ReactNode }) {
  const { isAuthenticated, isLoading, signIn, getAccessToken, signOut } = useLogto();
  const { isLoading: handling } = useHandleSignInCallback(() => {
    window.history.replaceState(null, '', `${window.location.pathname}#/`);
  });
  configureAuth(async () => (await getAccessToken(audience)) ?? null, () => void signOut(window.location.origin + window.location.pathname));
  if (isLoading || handling) return <div className="center muted">Signing in…</div>;
  if (!isAuthenticated) {
    return (
      <div className="signin card">
        <h1>Sign in to AICO</h1>
        <button onClick={() => void signIn(window.location.origin + window.location.pathname)}>Sign in with your organization</button>
      </div>
    );
  }
  return <>{children}</>;
}
