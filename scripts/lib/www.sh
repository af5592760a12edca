# shellcheck shell=bash
# scripts/lib/www.sh, sourced by scripts/dev (through rundir.sh) and
# scripts/cluster: the web client's served tree. It is www/ with the client
# library's modules (clients/js/src/) under js/parley-client/, where
# www/js/app.js imports them; make install lays out $(pkgdatadir)/www the
# same way (Makefile.am), so the library has one source, clients/js/src/.

# copy_www TOP DEST: copies the web client of the source tree TOP into DEST,
# a directory that must exist.
copy_www() {
	cp -R "$1/www/." "$2/"
	mkdir -p "$2/js/parley-client"
	cp "$1"/clients/js/src/*.js "$2/js/parley-client/"
}
