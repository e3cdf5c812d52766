// The hostile-input sweep, part 2 of 2 (test/hostile.ts says what it sends and what it expects).
import { defineSweep } from './hostile.ts';

defineSweep(2, 2);
