/** Layout and routes. Hash routing: the API serves the built files at `/` and needs no fallback route. */
import { lazy, Suspense } from 'react';
import { HashRouter, NavLink, Navigate, Route, Routes } from 'react-router-dom';

// Pages load on first visit: the builder (React Flow, forms) is the heavy one.
const named = <K extends string>(load: () => Promise<Record<K, React.ComponentType>>, name: K) =>
  lazy(async () => ({ default: (await load())[name] }));
const BuilderPage = named(() => import('./pages/BuilderPage'), 'BuilderPage');
const ConsolePage = named(() => import('./pages/ConsolePage'), 'ConsolePage');
const FlowsPage = named(() => import('./pages/FlowsPage'), 'FlowsPage');
const IntegrationsPage = named(() => import('./pages/IntegrationsPage'), 'IntegrationsPage');
const KnowledgePage = named(() => import('./pages/KnowledgePage'), 'KnowledgePage');
const PhoneNumbersPage = named(() => import('./pages/PhoneNumbersPage'), 'PhoneNumbersPage');
const ProvidersPage = named(() => import('./pages/ProvidersPage'), 'ProvidersPage');
const SecretsPage = named(() => import('./pages/SecretsPage'), 'SecretsPage');
const SessionPage = named(() => import('./pages/SessionPage'), 'SessionPage');
const SessionsPage = named(() => import('./pages/SessionsPage'), 'SessionsPage');
const UserMemoryPage = named(() => import('./pages/UserMemoryPage'), 'UserMemoryPage');
const WhatsAppPage = named(() => import('./pages/WhatsAppPage'), 'WhatsAppPage');

export function App() {
  return (
    <HashRouter>
      <div className="layout">
        <nav className="sidebar">
          <div className="brand">AICO</div>
          <NavLink to="/flows">Flows</NavLink>
          <NavLink to="/sessions">Monitoring</NavLink>
          <NavLink to="/providers">Providers</NavLink>
          <NavLink to="/secrets">Secrets</NavLink>
          <NavLink to="/knowledge">Knowledge</NavLink>
          <NavLink to="/memory">User memory</NavLink>
          <NavLink to="/integrations">Integrations</NavLink>
          <NavLink to="/whatsapp">WhatsApp</NavLink>
          <NavLink to="/phone">Phone numbers</NavLink>
        </nav>
        <main className="content">
          <Suspense fallback={<p className="muted">Loading…</p>}>
          <Routes>
            <Route path="/" element={<Navigate to="/flows" replace />} />
            <Route path="/flows" element={<FlowsPage />} />
            <Route path="/flows/:id" element={<BuilderPage />} />
            <Route path="/flows/:id/test" element={<ConsolePage />} />
            <Route path="/sessions" element={<SessionsPage />} />
            <Route path="/sessions/:id" element={<SessionPage />} />
            <Route path="/providers" element={<ProvidersPage />} />
            <Route path="/secrets" element={<SecretsPage />} />
            <Route path="/knowledge" element={<KnowledgePage />} />
            <Route path="/memory" element={<UserMemoryPage />} />
            <Route path="/integrations" element={<IntegrationsPage />} />
            <Route path="/whatsapp" element={<WhatsAppPage />} />
            <Route path="/phone" element={<PhoneNumbersPage />} />
            <Route path="*" element={<p>Page not found.</p>} />
          </Routes>
          </Suspense>
        </main>
      </div>
    </HashRouter>
  );
}
