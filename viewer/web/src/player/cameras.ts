/**
 * Camera presets from the two files trainers write beside a scene:
 *  - cameras.json (INRIA 3DGS): a list of {img_name, width, height, position [3],
 *    rotation [3][3] (camera-to-world, OpenCV axes: x right, y down, z forward), fx, fy};
 *  - transforms.json (nerfstudio / instant-ngp): {fl_x?, camera_angle_x?, frames: [{file_path,
 *    transform_matrix [4][4] (camera-to-world, OpenGL axes: y up, z back)}]}.
 * Presets come out in the PLY frame as position + camera-to-world rotation in three.js axes
 * (x right, y up, z back) and a vertical field of view.
 */
export interface CameraPreset {
  name: string;
  /** [3] camera centre. */
  position: number[];
  /** [9] row-major camera-to-world rotation, three.js camera axes. */
  rotation: number[];
  /** Vertical field of view, degrees. */
  fovY: number;
}

const MAX_PRESETS = 10000;

function finite(xs: unknown, n: number): number[] | null {
  if (!Array.isArray(xs) || xs.length !== n) return null;
  const out = xs.map(Number);
  return out.every(Number.isFinite) ? out : null;
}

function fov(focal: unknown, size: unknown, fallback = 50): number {
  const f = Number(focal);
  const s = Number(size);
  return f > 0 && s > 0 && Number.isFinite(f) && Number.isFinite(s) ? (2 * Math.atan(s / (2 * f)) * 180) / Math.PI : fallback;
}

/** Parse either file; throws Error with the fault when it is neither. */
export function parseCameras(json: unknown): CameraPreset[] {
  const out: CameraPreset[] = [];
  if (Array.isArray(json)) {
    for (const [i, c] of json.slice(0, MAX_PRESETS).entries()) {
      const pos = finite(c?.position, 3);
      const rows = Array.isArray(c?.rotation) ? c.rotation.flat() : null;
      const r = finite(rows, 9);
      if (!pos || !r) throw new Error(`cameras.json entry ${i}: needs position [3] and rotation [3][3]`);
      // OpenCV camera axes -> three.js camera axes: negate the y and z columns
      const rot = [r[0], -r[1], -r[2], r[3], -r[4], -r[5], r[6], -r[7], -r[8]];
      out.push({ name: String(c.img_name ?? c.id ?? i), position: pos, rotation: rot, fovY: fov(c.fy, c.height) });
    }
    return out;
  }
  const obj = json as { frames?: unknown; fl_y?: unknown; fl_x?: unknown; h?: unknown; w?: unknown; camera_angle_x?: unknown };
  if (obj && Array.isArray(obj.frames)) {
    for (const [i, f] of obj.frames.slice(0, MAX_PRESETS).entries()) {
      const m = finite(Array.isArray(f?.transform_matrix) ? f.transform_matrix.flat() : null, 16);
      if (!m) throw new Error(`transforms.json frame ${i}: needs transform_matrix [4][4]`);
      // OpenGL camera axes already match three.js's
      const rot = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
      let fy = fov(f.fl_y ?? obj.fl_y ?? f.fl_x ?? obj.fl_x, f.h ?? obj.h);
      if (obj.camera_angle_x !== undefined && f.fl_y === undefined && obj.fl_y === undefined) {
        fy = (Number(obj.camera_angle_x) * 180) / Math.PI || fy;
      }
      out.push({ name: String(f.file_path ?? i).split("/").pop() ?? String(i), position: [m[3], m[7], m[11]], rotation: rot, fovY: fy });
    }
    return out;
  }
  throw new Error("neither a cameras.json list nor a transforms.json object with frames");
}
