import { loadNative } from '../src/native.js';
import { backendSuite } from './support/suite.js';

backendSuite('native', () => loadNative());
