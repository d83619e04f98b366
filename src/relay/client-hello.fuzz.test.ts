import { fuzzBriefly } from '../lib/fuzz-briefly.ts';
import { targets } from './client-hello.fuzz.ts';

fuzzBriefly(new URL('./client-hello.fuzz.ts', import.meta.url), targets);
