import { fuzzBriefly } from './fuzz-briefly.ts';
import { targets } from './proxy-v2.fuzz.ts';

fuzzBriefly(new URL('./proxy-v2.fuzz.ts', import.meta.url), targets);
