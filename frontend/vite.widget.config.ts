/** The embeddable web widget: one self-contained script, dist/widget.js, served by the API as /widget.js. */
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: false, // the dashboard's build shares dist/
    lib: { entry: 'src/widget/widget.ts', formats: ['iife'], name: 'AicoWidget', fileName: () => 'widget.js' },
  },
});
