package migrate

import (
	"context"
	"errors"
	"io"

	"github.com/mailferry/mailferry/formats"
)

// AbsentSink stands for a local destination that does not exist yet, in a
// dry run: it holds no folders, so everything would be copied, and opening
// it creates nothing (opening the real store would make the directory and
// its manifest). It refuses to be written: a dry run never writes.
type AbsentSink struct{}

var errAbsentSink = errors.New("the destination does not exist yet, and a dry run creates nothing")

func (AbsentSink) Separator() rune { return '/' }

func (AbsentSink) Folders(context.Context) ([]formats.Folder, error) { return nil, nil }

func (AbsentSink) Ensure(context.Context, []string) (formats.Folder, error) {
	return formats.Folder{}, errAbsentSink
}

func (AbsentSink) Index(context.Context, formats.Folder, func(string) bool, func(string, formats.Key) error) error {
	return nil
}

func (AbsentSink) Store(context.Context, formats.Folder, formats.Message, int64, io.Reader) (string, error) {
	return "", errAbsentSink
}

func (AbsentSink) Close() error { return nil }
