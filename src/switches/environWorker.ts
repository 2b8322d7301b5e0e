/** A reader thread of environReader.ts: it serves environ reads until told to stop. */
import { workerData } from 'node:worker_threads';
import { serveEnvironReads } from './environRead';

export interface EnvironWorkerData {
  control: SharedArrayBuffer;
  procRoot: string;
}

const data = workerData as EnvironWorkerData;
serveEnvironReads(new Int32Array(data.control), data.procRoot);
