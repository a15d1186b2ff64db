// squall-resume as an ES module: `import {follow} from 'squall-resume'`.
// The code is the classic script beside it (one source, no build step),
// which also defines the global SquallResume; its functions are exported.
import './squall-resume.js';

const api = globalThis.SquallResume;
export const {DEFAULTS, ResumeError, follow, parsePosition, compareOffsets} = api;
export default api;
