from seqattn.cli import entry

entry()
