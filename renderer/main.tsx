// Renderer entry: picks the API transport and mounts the wizard. Nothing else happens here.
// Loaded by index.html as the only script (CSP script-src 'self').
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { connectApi } from './api.js';
import { App } from './app.js';
import './styles.css';

const api = connectApi();
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App api={api} />
  </StrictMode>,
);
