// Vite build of the agentq serve dashboard: web/ → web/dist/ (served by `agentq serve` at /).
// Preact's JSX through Vite's own transform (no framework plugin needed).
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false },
  // `npm run dev --workspace web`: API calls go to a running `agentq serve` (AGENTQ_URL, default :8765).
  server: { proxy: { '/v1': process.env.AGENTQ_URL ?? 'http://127.0.0.1:8765' } },
});
