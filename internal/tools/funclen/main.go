package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type fn struct {
	where string
	lines int
}

func main() {
	over := flag.Int("over", 60, "list every function longer than this many lines")
	flag.Parse()
	roots := flag.Args()
	if len(roots) == 0 {
		roots = []string{"."}
	}
	var fns []fn
	for _, root := range roots {
		found, err := collect(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, "funclen:", err)
			os.Exit(1)
		}
		fns = append(fns, found...)
	}
	if len(fns) == 0 {
		fmt.Fprintln(os.Stderr, "funclen: no functions found")
		os.Exit(1)
	}
	report(fns, *over)
}

// collect parses every production .go file below root.
func collect(root string) ([]fn, error) {
	var out []fn
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root || path == filepath.Join(root, "internal", "tools") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				out = append(out, fn{where: fmt.Sprintf("%s:%d %s", path, fset.Position(fd.Pos()).Line, name(fd)),
					lines: fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1})
			}
		}
		return nil
	})
	return out, err
}

func name(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

func report(fns []fn, over int) {
	slices.SortFunc(fns, func(a, b fn) int { return b.lines - a.lines })
	lens := make([]int, len(fns))
	for i, f := range fns {
		lens[i] = f.lines
	}
	slices.Sort(lens)
	fmt.Printf("functions: %d, median %d lines, longest %d lines (%s)\n", len(fns), lens[len(lens)/2], fns[0].lines, fns[0].where)
	for _, f := range fns {
		if f.lines <= over {
			break
		}
		fmt.Printf("  %4d  %s\n", f.lines, f.where)
	}
}
