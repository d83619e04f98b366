import { fuzzBriefly } from '../lib/fuzz-briefly.ts';
import { targets } from './server.fuzz.ts';

fuzzBriefly(new URL('./server.fuzz.ts', import.meta.url), targets);
