import { loadComponent } from '../src/component.js';
import { backendSuite } from './support/suite.js';

backendSuite('component', loadComponent);
