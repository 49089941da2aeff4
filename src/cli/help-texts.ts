// Help texts several commands share (in a module of its own, so a light command need not load the
// heavy ones that also use them).
export const IMAGE_ARG_HELP = 'image (docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF])';
