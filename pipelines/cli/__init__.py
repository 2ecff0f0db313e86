"""The command line: the parser and exit codes, every command, Beam's flags, settings from flags and YAML,
`judgemine plan`, and the generated reference pages."""
