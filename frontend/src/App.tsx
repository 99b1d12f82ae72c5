/** Layout and routes. Hash routing: the API serves the built files at `/` and needs no fallback route. */
import { HashRouter, NavLink, Navigate, Route, Routes } from 'react-router-dom';
import { BuilderPage } from './pages/BuilderPage';
import { ConsolePage } from './pages/ConsolePage';
import { FlowsPage } from './pages/FlowsPage';
import { ProvidersPage } from './pages/ProvidersPage';
import { SecretsPage } from './pages/SecretsPage';
import { SessionPage } from './pages/SessionPage';
import { SessionsPage } from './pages/SessionsPage';

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
        </nav>
        <main className="content">
          <Routes>
            <Route path="/" element={<Navigate to="/flows" replace />} />
            <Route path="/flows" element={<FlowsPage />} />
            <Route path="/flows/:id" element={<BuilderPage />} />
            <Route path="/flows/:id/test" element={<ConsolePage />} />
            <Route path="/sessions" element={<SessionsPage />} />
            <Route path="/sessions/:id" element={<SessionPage />} />
            <Route path="/providers" element={<ProvidersPage />} />
            <Route path="/secrets" element={<SecretsPage />} />
            <Route path="*" element={<p>Page not found.</p>} />
          </Routes>
        </main>
      </div>
    </HashRouter>
  );
}
