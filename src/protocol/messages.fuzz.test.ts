import { fuzzBriefly } from '../lib/fuzz-briefly.ts';
import { targets } from './messages.fuzz.ts';

fuzzBriefly(new URL('./messages.fuzz.ts', import.meta.url), targets);
