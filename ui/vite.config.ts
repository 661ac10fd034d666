/// <reference types="vitest/config" />
// Vite serves the UI to Tauri in development (fixed port, see tauri.conf.json devUrl) and builds
// it into ui/dist for the bundled app. Vitest reuses the same config.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';

export default defineConfig({
  plugins: [svelte(), svelteTesting()],
  // Relative asset URLs: the bundled app loads index.html from Tauri's custom protocol.
  base: './',
  // Keep Tauri's own terminal output visible when both run in one terminal.
  clearScreen: false,
  server: {
    port: 1420,
    strictPort: true,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  test: {
    environment: 'jsdom',
    // Each test file runs in its own VM context (module singletons such as the stores start
    // fresh) while jsdom is loaded once per worker: 267 tests in ~25 s instead of ~105 s with
    // the default process-per-file pool, whose time went into loading jsdom 32 times. One worker
    // per core: Vitest's default (cores - 1) is a single worker on a 2-core machine.
    pool: 'vmThreads',
    maxWorkers: '100%',
    include: ['src/**/*.test.ts'],
    setupFiles: ['src/test/setup.ts'],
  },
});
