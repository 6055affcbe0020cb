import { loadComponent } from '../src/component.js';
import { loadNative } from '../src/native.js';
import { restSuite } from './support/rest-suite.js';

restSuite('component', () => loadComponent());
restSuite('native', () => loadNative());
