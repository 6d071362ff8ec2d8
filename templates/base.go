package templates

// BaseFile is the name of the file of blocks every template may call
// ("fwpush.input", ...), as messages name it.
const BaseFile = baseName + ext

// BaseSource returns the source of BaseFile, so that a rendered line the
// shared blocks wrote can be traced to its line there (see SourceLine).
func BaseSource() string {
	b, err := builtin.ReadFile(BaseFile)
	if err != nil {
		panic("templates: " + BaseFile + " is not embedded: " + err.Error())
	}
	return string(b)
}
