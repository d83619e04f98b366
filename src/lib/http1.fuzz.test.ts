import { fuzzBriefly } from './fuzz-briefly.ts';
import { targets } from './http1.fuzz.ts';

fuzzBriefly(new URL('./http1.fuzz.ts', import.meta.url), targets);
