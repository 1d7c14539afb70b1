#!/usr/bin/perl
# The second, independent DKIM verifier: Perl's Mail::DKIM, as SpamAssassin
# uses it. Verifies every *.eml in a folder, asking the DNS server on
# 127.0.0.1:PORT for keys; prints "<file> <result> <detail>" a line each.
# Usage: dkim_verify.pl PORT DIR
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my ($port, $dir) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 0,
    retry => 2, udp_timeout => 3, tcp_timeout => 3));

opendir(my $dh, $dir) or die "cannot open $dir: $!";
for my $name (sort grep { /\.eml$/ } readdir($dh)) {
    open(my $fh, '<:raw', "$dir/$name") or die "cannot read $name: $!";
    my $verifier = Mail::DKIM::Verifier->new();
    $verifier->load($fh);
    close($fh);
    my $detail = $verifier->result_detail() // '';
    $detail =~ s/\s+/ /g;
    print "$name ", $verifier->result(), " $detail\n";
}
