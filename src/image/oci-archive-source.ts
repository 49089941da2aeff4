// `oci-archive:FILE[:TAG]`: an OCI image layout inside a tar, read in place (nothing is extracted).
import { MANIFEST_CAP, type ImageSource } from './source.ts';
import type { LayoutFiles } from './layout-files.ts';
import { OciLayoutImage } from './oci-layout.ts';
import { TarArchive } from './tar-archive.ts';
import { tooLarge } from './verified-read.ts';

/** Files of a layout stored in a tar archive; closing them closes the archive. */
export function archiveFiles(archive: TarArchive): LayoutFiles {
  return {
    where: archive.file,
    async read(path, cap = MANIFEST_CAP) {
      const member = archive.get(path);
      if (!member) return undefined;
      if (member.size > cap) throw tooLarge(`${archive.file}:${member.name}`, member.size, cap);
      return archive.read(member);
    },
    async open(path) {
      const member = archive.get(path);
      if (!member) return undefined;
      return { size: member.size, stream: archive.createReadStream(member) };
    },
    close: () => archive.close(),
  };
}

export async function openOciArchive(file: string, tag?: string): Promise<ImageSource> {
  const archive = await TarArchive.open(file);
  try {
    return await OciLayoutImage.open(archiveFiles(archive), `oci-archive:${file}${tag ? `:${tag}` : ''}`, tag);
  } catch (e) {
    await archive.close();
    throw e;
  }
}
