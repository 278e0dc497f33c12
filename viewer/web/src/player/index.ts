/** The web player's entry: defines `<splat-player>` (see element.ts). */
import { SplatPlayer } from "./element.js";

export { SplatPlayer };
export type { AssetInfo } from "./element.js";
export type { DisplaySettings } from "./view.js";

if (!customElements.get("splat-player")) customElements.define("splat-player", SplatPlayer);
