"""The checks an audit runs, one small unit each; `registry` names them for Python and YAML."""
