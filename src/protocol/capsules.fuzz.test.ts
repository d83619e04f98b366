import { fuzzBriefly } from '../lib/fuzz-briefly.ts';
import { targets } from './capsules.fuzz.ts';

fuzzBriefly(new URL('./capsules.fuzz.ts', import.meta.url), targets);
