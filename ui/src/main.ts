// Must stay the first import: see locale-guard.ts.
import './locale-guard';
import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';

const app = mount(App, { target: document.getElementById('app')! });

export default app;
