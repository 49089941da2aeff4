// Bench registries are the test harness's: the same Debian docker-registry on a loopback port.
export { startRegistry, type Registry } from '../../test/helpers/registry.ts';
export { skopeo, skopeoCopy } from '../../test/helpers/skopeo.ts';
export { runImgx, NODE_BIN, IMGX_BIN, REPO_ROOT } from '../../test/helpers/imgx.ts';
export { tempDir, removeTempDir } from '../../test/helpers/tempdir.ts';
