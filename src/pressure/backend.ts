/**
 * The backend with /proc/pressure/*: reads of the pressure files and the PSI triggers written to
 * them go to PressureFiles, for the cgroup the backend decides a reader sees (its decide and
 * decideFor); everything else is the backend's.
 */
import { IsolfsBackend, type BackendOptions } from '../backend';
import type { Errno, FileRequest, TriggerLease, WriteRequest } from '../fuse/fileBackend';
import { isPressurePath } from '../fuse/layout';
import { PressureFiles } from './files';

export class IsolfsBackendWithPressure extends IsolfsBackend {
  readonly pressure: PressureFiles;

  constructor(options: BackendOptions) {
    super(options);
    this.pressure = new PressureFiles({ procRoot: options.procRoot, unifiedRoot: options.hierarchy.unifiedRoot }, options.logger, this, options.containers);
  }

  override read(request: FileRequest): Buffer | Errno {
    const { file } = request;
    return isPressurePath(file) ? this.pressure.read({ ...request, file }) : super.read(request);
  }

  openTrigger(request: WriteRequest): TriggerLease | Errno {
    return this.pressure.openTrigger(request);
  }
}
