// The hostile-input sweep, part 1 of 2 (test/hostile.ts says what it sends and what it expects).
import { defineSweep } from './hostile.ts';

defineSweep(1, 2);
