/** The `.gsi` renderer: decoded 2D Gaussians drawn by a WebGL2 fragment shader. */
export { GsiRenderer, type GsiRendererOptions, type GsiRenderStats, type ImageView, type RenderedPixels } from "./renderer.js";
export { MAX_TILE_ENTRIES, SIGMA_MAX, buildTiles, conics, lodCount, prepareImage, reaches, tileSize, type PreparedImage, type TileIndex } from "./tiles.js";
