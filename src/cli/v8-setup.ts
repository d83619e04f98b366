// Imported first by the CLI entry point so the GC settings hold before any other module runs.
import { tuneV8ForDataPlane } from '../lib/v8-tuning.ts';

tuneV8ForDataPlane();
